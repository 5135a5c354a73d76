from certautopilot.cli.main import app

app()
