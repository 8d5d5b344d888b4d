"""Market replay: a websocket server that plays exchange frames (recorded or generated) at a chosen speed."""
