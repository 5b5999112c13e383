from kinema.entry import run

run()
