"""dialbot: automated dial-testing of mobile value-added services.

A scheduler drives banks of GSM modems over AT commands to order, use and
cancel SP services as a subscriber would; the evidence goes into a
hash-chained log, a judge turns it into findings and the findings into
published SP integrity rankings.
"""

__version__ = "0.1.0"
