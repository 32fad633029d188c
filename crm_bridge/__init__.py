"""CRM tables in PostgreSQL: schema migrations, writer, outbox, lead intake."""
