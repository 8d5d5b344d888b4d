"""Output: the one renderer (tables or JSON) and the progress printers."""
