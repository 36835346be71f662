"""Groundswell's services; each subpackage is one service, importing only `shared`."""
