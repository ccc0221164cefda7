from hookswitch.cli import app

app(prog_name="hookswitch")
