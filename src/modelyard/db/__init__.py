"""The database layer: the only importer of psycopg and pgserver.

Functions take an open connection; the caller owns the transaction.
"""
