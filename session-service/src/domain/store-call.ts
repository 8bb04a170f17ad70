import { GatehouseError, isGatehouseError } from '../../../common/src/errors.js';

/**
 * Run a call on the store (Redis): its failures become SESSION_STORE_UNAVAILABLE (503), never an
 * answer such as "no session" or "no second factor"; catalogue errors pass as they are.
 */
export async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw isGatehouseError(err)
      ? err
      : new GatehouseError('SESSION_STORE_UNAVAILABLE', { cause: err });
  }
}
