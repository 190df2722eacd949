import { useState, type FormEvent } from 'react';
import { api, type FeedbackView } from '../api.js';
import { Thumb } from '../components/Thumb.js';
import { ErrorNote } from '../components/ui.js';

/**
 * Helpful / not helpful (👍/👎) on one answer, with an optional comment: one rating per person per answer; pressing the
 * pressed button again withdraws it. Stored per organisation; admins see it per model.
 */
export function FeedbackButtons({ messageId, initial }: { messageId: string; initial: FeedbackView | null | undefined }) {
  const [fb, setFb] = useState<FeedbackView | null>(initial ?? null);
  const [commenting, setCommenting] = useState(false);
  const [comment, setComment] = useState(initial?.comment ?? '');
  const [error, setError] = useState<unknown>(null);
  const path = `/api/chat/messages/${encodeURIComponent(messageId)}/feedback`;

  const rate = async (rating: 'up' | 'down') => {
    setError(null);
    try {
      if (fb?.rating === rating) {
        await api(path, { method: 'DELETE' });
        setFb(null);
        setCommenting(false);
        return;
      }
      setFb(await api<FeedbackView>(path, { method: 'PUT', body: { rating, comment: fb?.comment ?? null } }));
      setCommenting(true);
    } catch (e) {
      setError(e);
    }
  };
  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (!fb) return;
    try {
      setFb(await api<FeedbackView>(path, { method: 'PUT', body: { rating: fb.rating, comment: comment.trim() || null } }));
      setCommenting(false);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <span className="feedback" role="group" aria-label="Rate this answer">
        <button type="button" className="btn btn-icon" aria-label="Helpful" aria-pressed={fb?.rating === 'up'} onClick={() => void rate('up')}>
          <Thumb />
        </button>
        <button type="button" className="btn btn-icon" aria-label="Not helpful" aria-pressed={fb?.rating === 'down'} onClick={() => void rate('down')}>
          <Thumb down />
        </button>
        {fb && !commenting ? (
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setCommenting(true)}>
            {fb.comment ? 'Edit comment' : 'Add comment'}
          </button>
        ) : null}
      </span>
      {commenting && fb ? (
        <form className="feedback-form" onSubmit={save}>
          <label className="sr-only" htmlFor={`fb-${messageId}`}>
            Comment on this answer (optional)
          </label>
          <input id={`fb-${messageId}`} maxLength={2000} placeholder={fb.rating === 'down' ? 'What was wrong? (optional)' : 'What was good? (optional)'} value={comment} onChange={(e) => setComment(e.target.value)} />
          <button type="submit" className="btn btn-small">
            Save comment
          </button>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setCommenting(false)}>
            Close
          </button>
        </form>
      ) : null}
      <ErrorNote error={error} />
    </>
  );
}
