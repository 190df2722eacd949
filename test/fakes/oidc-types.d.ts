// oidc-provider ships no TypeScript types; the test fake uses it untyped.
declare module 'oidc-provider' {
  const Provider: any; // any: untyped package (test-only dependency)
  export default Provider;
}
