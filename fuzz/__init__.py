"""Fuzz targets for every trionet.wire parser (``python -m fuzz --seconds N``).

Each target takes arbitrary bytes and must either get a representation or a
ParseError from the parser; on success it also checks that emitting the
representation and parsing again gives the same representation. The seed
corpus under ``fuzz/corpus/`` holds real frames a Linux kernel emitted (see
``fuzz/corpus/README.md``).
"""
