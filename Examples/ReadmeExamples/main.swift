// The README's Swift examples, each inside a function so that they compile together.
// `ReadmeExamplesTests` checks that every ```swift block of README.md appears here (or in
// Examples/WorkerProgram) line by line, so an example that no longer compiles fails the build.
print("The README's examples compile; this program runs none of them.")
