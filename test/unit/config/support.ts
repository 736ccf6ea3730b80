import { ConfigError } from '../../../pkg/config/errors.ts';

/**
 * The ConfigError that `fn` throws. Anything else it throws is rethrown, and returning normally
 * fails the test with `what` (the input) in the message.
 */
export function configErrorOf(fn: () => unknown, what: string): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`no error for ${what}`);
}
