from services.geo.app import create_app

app = create_app()
