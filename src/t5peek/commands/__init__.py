"""One module per command: parse options, call the core, hand the record to the output sink.

The command bodies import their core and renderer when they run, not at the top, so that `t5peek --help` and
usage errors load none of the model code. Everything else in the package imports at the top."""
