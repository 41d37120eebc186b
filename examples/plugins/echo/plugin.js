// echo — the smallest JavaScript plug-in: a step that answers `{}` (nothing to change).
//
// Herald's tests and benchmarks use it to measure the cost of calling a JavaScript component
// (instantiation plus one `handle` call) without any work of its own.
//
// Registration: an endpoint of kind `plugin` with `"plugin": "echo"`, subscribed as a
// synchronous step (`"mode": "sync"`) to any event that allows steps.

export const handler = {
  handle(input) {
    return "{}";
  },
};
