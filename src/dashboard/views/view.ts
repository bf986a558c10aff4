/**
 * What a page of the dashboard is: something that renders itself from its state and lets go of
 * its streams and timers when the user leaves it.
 *
 * @module
 */
import type { TemplateResult } from 'lit-html';

/** A page of the dashboard. */
export interface View {
  /** The page's title (the browser tab shows it). */
  title(): string;
  render(): TemplateResult;
  /** Keys the page handles itself (j/k in lists); true when handled. */
  key?(event: KeyboardEvent): boolean;
  /** Stops the page's streams and timers. */
  dispose(): void;
}

/** The route's parameters: the path parts after the view's name, and the query. */
export interface Route {
  readonly parts: readonly string[];
  readonly query: URLSearchParams;
}
