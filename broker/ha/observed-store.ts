/**
 * A Store that tells someone when a commit fails. A leader's in-memory state runs ahead of its
 * writes (a hold released, a timer armed); when a write fails (etcd down, a timeout whose outcome
 * is unknown, a fenced write), the leader must reload from the store before acting again.
 */
import type { Store } from "../store/index.js";

export function observeCommits<S>(store: Store<S>, onFailure: (error: unknown) => void): Store<S> {
  return {
    get: (collection, id) => store.get(collection, id),
    list: (collection, options) => store.list(collection, options),
    commit: async (ops) => {
      try {
        return await store.commit(ops);
      } catch (error) {
        onFailure(error);
        throw error;
      }
    },
    watch: (options, listener, onError) => store.watch(options, listener, onError),
    revision: () => store.revision(),
    close: () => store.close(),
  };
}
