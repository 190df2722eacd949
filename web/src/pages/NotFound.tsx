import { PageTitle } from '../components/ui.js';
import { Link } from '../router.js';

export function NotFound() {
  return (
    <section className="page narrow">
      <PageTitle>Page not found</PageTitle>
      <p>
        There is nothing here. <Link to="/chat">Go to chat</Link>.
      </p>
    </section>
  );
}
