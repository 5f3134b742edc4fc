// Rolldown options that sdk/js/build.sh passes to `jco componentize --bundle`:
// `sluice-sdk` resolves to this folder's sluice.js (no install in the step's
// own folder needed), and the contract's interfaces stay imports of the
// component rather than modules to bundle.
import { fileURLToPath } from "node:url";

export default {
  external: [/^sluice:pipeline\//],
  resolve: {
    alias: { "sluice-sdk": fileURLToPath(new URL("./sluice.js", import.meta.url)) },
  },
};
