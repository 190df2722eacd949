import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { K8sObject } from './manifests.js';

/** A kubernetes-models class: built from the object, validate() checks it against the OpenAPI schema. */
interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

const MODELS: Record<string, ModelClass> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

/**
 * Validates each object against the Kubernetes object schemas (kubernetes-models ships the
 * OpenAPI-derived JSON schemas; no cluster, no network). Returns one line per invalid object.
 */
export function validateObjects(objects: readonly unknown[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const { apiVersion, kind, metadata } = o as { apiVersion?: string; kind?: string; metadata?: { name?: string } };
    const Model = MODELS[`${apiVersion}/${kind}`];
    const what = `${apiVersion}/${kind} ${metadata?.name ?? '(no name)'}`;
    if (!Model) {
      problems.push(`${what}: no schema known for this kind`);
      continue;
    }
    try {
      new Model(o as never).validate();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  }
  return problems;
}

export type { K8sObject };
