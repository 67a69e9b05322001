"""sslrec: graph self-supervised recommendation, exact to the papers and fast."""

__version__ = "0.1.0"
