import { createTheme } from "@mui/material/styles";

// MUI's default palette meets WCAG AA contrast for text on its primary and status colours.
// No web font is loaded (the CSP allows only 'self'): the system sans-serif is used.
export const theme = createTheme({
  typography: {
    fontFamily:
      'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif',
  },
  components: {
    MuiButtonBase: { defaultProps: { disableRipple: false } },
  },
});
