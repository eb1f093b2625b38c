// The production runbook's "Load Testing" example, for users who prefer k6:
//   k6 run loadtest/k6/load-test.js
//   BASE_URL=http://127.0.0.1:8080 k6 run loadtest/k6/load-test.js
//
// Same shape as the runbook: ramp to 100 virtual users over 2 minutes, hold 5 minutes,
// ramp down over 2 minutes; GET /health; fail if p95 >= 500 ms. The runbook's targets
// (p99 < 1 s, error rate < 0.1 %) are thresholds too, so `k6 run` exits non-zero when
// they are missed. Point it at a server on this machine only.
//
// The Rust harness covers the same ground and the realtime side:
//   cargo run --release -p fluxbase-loadtest -- rest --rate 1000 --duration 60

import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8080';

export const options = {
  stages: [
    { duration: '2m', target: 100 }, // Ramp up to 100 users
    { duration: '5m', target: 100 }, // Stay at 100 users
    { duration: '2m', target: 0 },   // Ramp down to 0 users
  ],
  thresholds: {
    http_req_duration: ['p(95)<500', 'p(99)<1000'], // 95% of requests < 500ms, 99% < 1s
    http_req_failed: ['rate<0.001'],                 // error rate < 0.1%
  },
};

export default function () {
  const response = http.get(`${BASE_URL}/health`);
  check(response, {
    'status is 200': (r) => r.status === 200,
  });
}
