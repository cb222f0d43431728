"""soundscape: rights-cleared AI ambient music."""
__version__ = "0.1.0"
