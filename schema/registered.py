"""Where pickle finds the declared records and enums (schema/declared.py): `schema.registered.<Name>`.

The cache pickles records (the Redis tier, the size sampling of the in-process tier), and pickle names a
class by module and name. `schema.declared.Graph(..., register=True)` (the default) sets each of its
record classes and enums here under its declared name, so a name is the class of the last graph that
registered it: a process builds its graph once (at start, before any record is cached or read back).
Nothing else lives here, so no declared name can shadow anything.
"""
