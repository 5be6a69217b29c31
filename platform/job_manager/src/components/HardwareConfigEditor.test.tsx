import { useState } from "react";
import { describe, expect, it } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { HardwareConfigEditor } from "./HardwareConfigEditor";

function Harness({ platform = "SpiNNaker", initial = "{}" }: { platform?: string; initial?: string }) {
  const [text, setText] = useState(initial);
  return <HardwareConfigEditor platform={platform} text={text} onChange={setText} />;
}

const json = () => screen.getByLabelText("Hardware configuration (JSON)") as HTMLTextAreaElement;

describe("HardwareConfigEditor", () => {
  it("offers the keys the SpiNNaker site accepts, each with a label", () => {
    render(<Harness />);
    for (const label of ["sPyNNaker version", "SpiNNaker tools version", "PyNN version", "Extra pip installs", "Extra git repositories"]) {
      expect(screen.getByLabelText(label)).toBeInTheDocument();
    }
  });

  it("writes form edits into the JSON", async () => {
    render(<Harness />);
    await userEvent.type(screen.getByLabelText("sPyNNaker version"), "7.0.0");
    expect(JSON.parse(json().value)).toEqual({ spynnaker_version: "7.0.0" });
    // One item a line; a trailing newline can be typed (the field keeps its draft while focused).
    const pip = screen.getByLabelText("Extra pip installs");
    pip.focus();
    fireEvent.change(pip, { target: { value: "elephant\n" } });
    expect(pip).toHaveValue("elephant\n");
    fireEvent.change(pip, { target: { value: "elephant\nquantities" } });
    expect(JSON.parse(json().value)).toEqual({ spynnaker_version: "7.0.0", extra_pip_installs: ["elephant", "quantities"] });
    await userEvent.clear(screen.getByLabelText("sPyNNaker version"));
    expect(JSON.parse(json().value)).toEqual({ extra_pip_installs: ["elephant", "quantities"] });
  });

  it("reads JSON edits into the form", () => {
    render(<Harness />);
    fireEvent.change(json(), { target: { value: '{"spynnaker_version": "master", "extra_makes": ["a", "b"]}' } });
    expect(screen.getByLabelText("sPyNNaker version")).toHaveValue("master");
    expect(screen.getByLabelText("Extra makes")).toHaveValue("a\nb");
  });

  it("types integers for BrainScaleS-2", async () => {
    render(<Harness platform="BrainScaleS-2" />);
    await userEvent.type(screen.getByLabelText("Wafer module"), "33");
    await userEvent.type(screen.getByLabelText("Software version"), "nmpm/1");
    expect(JSON.parse(json().value)).toEqual({ WAFER_MODULE: 33, SOFTWARE_VERSION: "nmpm/1" });
  });

  it("flags invalid JSON and unknown keys", () => {
    render(<Harness />);
    fireEvent.change(json(), { target: { value: "{nope" } });
    expect(screen.getByText(/Not valid JSON/)).toBeInTheDocument();
    expect(screen.getByLabelText("sPyNNaker version")).toBeDisabled();
    fireEvent.change(json(), { target: { value: '{"time_scale_factor": 2}' } });
    expect(screen.getByText(/does not know the key time_scale_factor/)).toBeInTheDocument();
  });
});
