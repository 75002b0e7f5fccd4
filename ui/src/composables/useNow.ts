// A clock that ticks, so "updated 4s ago" labels age without new data arriving.
import { onScopeDispose, ref } from 'vue';

export function useNow(intervalMs = 1000) {
  const now = ref(Date.now());
  const timer = window.setInterval(() => {
    now.value = Date.now();
  }, intervalMs);
  onScopeDispose(() => window.clearInterval(timer));
  return now;
}
