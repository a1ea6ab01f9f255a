#: The version of this audiosiam (``audiosiam --version``, ``audiosiam info``).
__version__ = "0.1.0"
