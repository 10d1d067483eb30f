"""The database adapter: the only package that imports SQLAlchemy.

It reflects schemas into :mod:`controller.engine.model`, streams rows in batches as
raw values, and writes plans per dialect (DDL, DML, sequences, ledger, locks).
Driver errors are classified here and chained into :mod:`controller.errors`.
"""
