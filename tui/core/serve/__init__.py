"""`ctxbudget serve`: the feed, journal and control of this machine over HTTP for `--connect` clients."""
