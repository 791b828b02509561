from services.registry.app import create_app

app = create_app()
