__all__ = ['ttypes', 'constants', 'GalaxyExpress']
