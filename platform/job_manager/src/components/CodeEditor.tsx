// The code editor (CodeMirror 6, Python). Loaded lazily: import it with React.lazy only.
import { useEffect, useRef } from "react";
import { basicSetup } from "codemirror";
import { python } from "@codemirror/lang-python";
import { EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import Box from "@mui/material/Box";
import { cspNonce } from "../csp";

interface Props {
  value: string;
  onChange?: (value: string) => void;
  /** The accessible name of the editing area. */
  label: string;
  readOnly?: boolean;
  minHeight?: number;
}

export default function CodeEditor({ value, onChange, label, readOnly = false, minHeight = 280 }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    if (!host.current) return undefined;
    const editor = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: value,
        extensions: [
          basicSetup,
          ...(cspNonce() ? [EditorView.cspNonce.of(cspNonce() as string)] : []),
          python(),
          EditorState.readOnly.of(readOnly),
          EditorView.editable.of(!readOnly),
          EditorView.contentAttributes.of({ "aria-label": label, "aria-multiline": "true" }),
          EditorView.theme({
            "&": { fontSize: "14px", border: "1px solid rgba(0,0,0,0.23)", borderRadius: "4px" },
            "&.cm-focused": { outline: "2px solid #1976d2" },
            ".cm-scroller": { minHeight: `${minHeight}px`, fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" },
          }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) changed.current?.(update.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = editor;
    return () => {
      editor.destroy();
      view.current = null;
    };
    // The editor is created once; later `value`s are pushed in below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [readOnly, label, minHeight]);

  useEffect(() => {
    const editor = view.current;
    if (editor && editor.state.doc.toString() !== value) {
      editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: value } });
    }
  }, [value]);

  // Tab inserts indentation inside the editor; Escape then Tab leaves it (CodeMirror's default).
  return <Box ref={host} data-testid="code-editor" sx={{ "& .cm-editor": { maxHeight: "60vh" } }} />;
}
