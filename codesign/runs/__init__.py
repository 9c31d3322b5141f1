"""The application layer: run folders, the explore workflows, report and show."""
