import { Link as RouterLink } from "react-router-dom";
import Link from "@mui/material/Link";
import Typography from "@mui/material/Typography";
import { usePageTitle } from "../lib/hooks";

export default function NotFound() {
  usePageTitle("Page not found");
  return (
    <>
      <Typography variant="h4" component="h1" gutterBottom>
        Page not found
      </Typography>
      <Link component={RouterLink} to="/">
        Back to your collabs
      </Link>
    </>
  );
}
