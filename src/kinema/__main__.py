from kinema.cli.main import run

run()
