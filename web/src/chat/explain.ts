import { ApiError, type Classification, type ClientErrorCode, type LimitRefusalDetails } from '../api.js';
import { boundaryLabel } from '../components/ui.js';

export const CLASS_LABEL: Record<Classification, string> = { public: 'Public', internal: 'Internal', confidential: 'Confidential', restricted: 'Restricted' };

export function list(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** A date in the user's locale ("1 January 2027 at 00:00"), never an ISO string. */
export function humanDate(iso: string | number): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: 'long', timeStyle: 'short' });
}
function humanTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString(undefined, { timeStyle: 'medium' }) : humanDate(iso);
}

const WHO: Record<LimitRefusalDetails['level'], string> = { tenant: "Your organisation's", user: 'Your', key: "This key's" };
const LIMIT: Record<LimitRefusalDetails['limit'], string> = {
  requests_per_minute: 'limit of requests per minute',
  tokens_per_minute: 'limit of tokens per minute',
  concurrent_requests: 'limit of requests at the same time',
  monthly_tokens: 'monthly token budget',
  monthly_cost_micros: 'monthly cost budget',
};

function limitDetails(e: ApiError): LimitRefusalDetails | null {
  const d = e.details as Partial<LimitRefusalDetails>;
  return d.level && d.limit && typeof d.limit_value === 'number' && d.reset ? (d as LimitRefusalDetails) : null;
}

/** What My usage reports as left (GET /api/ui/usage `remaining`): the quota message quotes the same figure. */
export interface Remaining {
  monthly_tokens: number | null;
  monthly_cost_micros: number | null;
}

/**
 * One precise sentence per refusal code, in words the user can act on. Internal details
 * (addresses, stack text) never appear: provider failures name the model and what to do.
 */
export function explain(err: ApiError, ctx: { cls: Classification; model: string; policy: Record<Classification, string[]> | null; remaining?: Remaining | null }): string {
  const { cls, model } = ctx;
  const allowed = ctx.policy?.[cls]?.map(boundaryLabel) ?? [];
  const code: ClientErrorCode = err.code;
  switch (code) {
    case 'policy_boundary_denied':
    case 'policy_boundary_unlicensed':
      return allowed.length
        ? `${CLASS_LABEL[cls]} data may only go to ${list(allowed)} models under your organisation's policy — pick a ${list(allowed)} model, or choose a lower classification if the data allows it.`
        : `${CLASS_LABEL[cls]} data may not be sent to any model under your organisation's policy.`;
    case 'policy_local_unavailable':
      return 'Your message must stay on a Local model under your organisation\'s policy, and no Local model is available. Ask your administrator.';
    case 'policy_content_blocked':
      return `Your message contains data your organisation's policy does not allow to leave (for example personal or secret data). Remove it, or pick a Local model. (${err.message})`;
    case 'key_classification_exceeded':
      return `You may not send ${CLASS_LABEL[cls]} data. Choose a lower classification.`;
    case 'model_not_found':
    case 'key_model_not_allowed':
    case 'provider_model_not_found':
      return `The model ${model} is not available to you. Pick another model.`;
    case 'permission_denied':
    case 'role_forbidden':
      return 'Your role in this organisation does not allow chatting. Ask an administrator for the member role.';
    case 'quota_exceeded': {
      const d = limitDetails(err);
      if (!d) return err.message;
      const unit = d.limit === 'monthly_cost_micros' ? `$${(d.limit_value / 1_000_000).toFixed(2)}` : `${d.limit_value.toLocaleString()} tokens`;
      const left = d.limit === 'monthly_tokens' ? ctx.remaining?.monthly_tokens : d.limit === 'monthly_cost_micros' ? ctx.remaining?.monthly_cost_micros : null;
      const leftText =
        typeof left === 'number' && left > 0
          ? ` has ${d.limit === 'monthly_cost_micros' ? `$${(left / 1_000_000).toFixed(2)}` : `${left.toLocaleString()} tokens`} left — not enough for this message and its answer`
          : ' is used up';
      return `${WHO[d.level]} ${LIMIT[d.limit]} (${unit})${leftText}. It resets on ${humanDate(d.reset)}.`;
    }
    case 'rate_limit_exceeded': {
      const d = limitDetails(err);
      if (!d) return 'You are sending too fast. Wait a moment and try again.';
      return `${WHO[d.level]} ${LIMIT[d.limit]} (${d.limit_value.toLocaleString()}) is reached. Try again after ${humanTime(d.reset)}.`;
    }
    case 'license_quota_exceeded':
    case 'license_lapsed':
      return "The appliance's licensed usage does not allow more calls right now. Ask your administrator.";
    case 'provider_timeout':
      return `The model ${model} did not answer in time. Try again, or pick another model.`;
    case 'provider_connection_error':
    case 'provider_unavailable':
    case 'provider_server_error':
    case 'provider_bad_response':
    case 'provider_auth_failed':
    case 'provider_error':
    case 'provider_stream_error':
      return `The model ${model} could not be reached or failed to answer. Try again later, or pick another model.`;
    case 'provider_busy':
    case 'provider_rate_limited':
      return `The model ${model} is busy. Try again in a moment, or pick another model.`;
    case 'vision_unsupported':
      return `The model ${model} does not accept images. Choose a model marked “images”, or remove the images.`;
    case 'gateway_unavailable':
      return 'The AI gateway is not available on this server yet.';
    default:
      return err.status >= 500 ? `Something went wrong on the server (${err.code}). Try again; if it persists, tell your administrator.` : err.message;
  }
}
