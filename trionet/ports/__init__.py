"""Published ports as data: the ``ports`` configuration section and the ``-p`` syntax (sans-IO)."""
