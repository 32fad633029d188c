"""The dialer controller: runs calls on Asterisk through ARI, gated, recorded and logged to the CRM."""
