"""One module per command: parse options, call the core, hand the record to the output sink."""
