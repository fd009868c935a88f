// make k8s-check: validate rendered objects of the kinds Kubernetes' own schemas do not know
// (CRDs: KEDA's ScaledObject, the Prometheus Operator's PrometheusRule) against their CRD
// schemas, as packaged by kubernetes-models (generated from the projects' CRDs). Reads a JSON
// array of objects on stdin; prints one JSON array of problems [{"name", "error"}]; exit 0.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = {
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
  "keda.sh/v1alpha1 TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1 PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1 ServiceMonitor": ServiceMonitor,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const problems = [];
for (const obj of JSON.parse(input)) {
  const name = `${obj.kind}/${obj.metadata?.name}`;
  const Model = MODELS[`${obj.apiVersion} ${obj.kind}`];
  if (!Model) {
    problems.push({ name, error: `no schema for ${obj.apiVersion} ${obj.kind}` });
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (error) {
    problems.push({ name, error: String(error.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(problems));
