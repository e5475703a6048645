"""Rich renderers: the only place that draws. Each takes a record and a Console."""
