// Composes subgraph SDLs into a supergraph with The Guild's composer (what Hive uses; Apollo's rules).
// Usage: node compose_supergraph.mjs NODE_PREFIX < [{"name": ..., "sdl": ...}, ...]
// NODE_PREFIX: the folder where `npm install @theguild/federation-composition graphql` ran.
// Prints {"errors": [message, ...]} or {"supergraphSdl": "..."} as JSON.
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.argv[2], "package.json"));
const { parse } = require("graphql");
const { composeServices, compositionHasErrors } = require("@theguild/federation-composition");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const services = JSON.parse(input).map(({ name, sdl }) => (
  { name, typeDefs: parse(sdl), url: `http://${name}.invalid/graphql` }));
const result = composeServices(services);
process.stdout.write(JSON.stringify(compositionHasErrors(result)
  ? { errors: result.errors.map((e) => e.message) }
  : { supergraphSdl: result.supergraphSdl }));
