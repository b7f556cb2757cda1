export { CallGuard, type CallGuardDeps, METHOD_RULES } from "./guard.js";
export {
  type Identity,
  type RateLimit,
  ROLES,
  type Role,
  type TenantPolicy,
  type TenantQuota,
  type TokenSource,
} from "./identity.js";
export {
  checkSecurity,
  isLoopback,
  type LoadedSecurity,
  loadSecurity,
  SECURITY_OPTIONS,
  type SecurityConfig,
} from "./options.js";
export { QuotaExceededError, QuotaLedger } from "./quota-ledger.js";
export { RateLimiter } from "./rate-limiter.js";
export { serverCredentials, type TlsFiles } from "./tls.js";
export { FileTokenSource, loadTokensFile, sha256Hex } from "./tokens-file.js";
