"""Services: the handlers that move orders and files forward, behind small ports."""
