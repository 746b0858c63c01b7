"""One module per API resource; :class:`switchboard.Switchboard` puts each on an attribute."""
