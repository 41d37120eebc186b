// echo — the smallest JavaScript plug-in: a step that answers `{}` (nothing to change).
//
// Herald's tests and benchmarks use it to measure the cost of calling a JavaScript component
// (instantiation plus one `handle` call) without any work of its own.
//
// Registered as a synchronous step on any event, for example:
//   { "name": "echo", "kind": "step", "stage": "pre_operation",
//     "event": "contoso_CustomerPurchase", "module": "target/plugins/echo.wasm" }

export const handler = {
  handle(input) {
    return "{}";
  },
};
