"""Risk manager: every signal checked against the limits; decisions audited; approved ones become orders."""
