"""The ``trionet`` command: the top layer, which only wires lower ones together."""
