"""The GraphQL schema. No I/O here: fields ask resolvers, which ask loaders."""
