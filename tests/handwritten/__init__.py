"""The hand-written record mappings the gateway ran before the REST sources were declared
(sources/*.yaml): tests/test_mapping.py and bench.mapping check and measure the declarations against
them. Nothing in the gateway imports these."""
