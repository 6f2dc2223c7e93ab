"""The PostgreSQL schema (`tables`) and its migrations (`migrate.upgrade`), shared by every
service that touches the database."""
