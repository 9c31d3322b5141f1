from codesign.cli import entry

entry()
