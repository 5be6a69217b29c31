import { useState, type ReactNode } from "react";
import { Link as RouterLink, useNavigate } from "react-router-dom";
import AppBar from "@mui/material/AppBar";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Container from "@mui/material/Container";
import Toolbar from "@mui/material/Toolbar";
import Typography from "@mui/material/Typography";
import { useAuth } from "../auth";
import { ServiceBanner } from "./ServiceBanner";

export function Layout({ children }: { children: ReactNode }) {
  const { user, signOut } = useAuth();
  const navigate = useNavigate();
  const [signingOut, setSigningOut] = useState(false);

  const onSignOut = async () => {
    setSigningOut(true);
    try {
      await signOut();
    } catch {
      // the cookie is gone or the server is away: either way, show the sign-in page
    } finally {
      setSigningOut(false);
      navigate("/signin");
    }
  };

  return (
    <>
      <Box
        component="a"
        href="#main"
        sx={{
          position: "absolute",
          left: 8,
          top: -48,
          zIndex: 2000,
          p: 1,
          bgcolor: "background.paper",
          color: "primary.main",
          border: 2,
          borderColor: "primary.main",
          borderRadius: 1,
          "&:focus": { top: 8 },
        }}
      >
        Skip to main content
      </Box>
      <AppBar position="static" component="header">
        <Toolbar sx={{ flexWrap: "wrap", gap: 1 }}>
          <Typography
            component={RouterLink}
            to="/"
            variant="h6"
            sx={{ color: "inherit", textDecoration: "none", mr: 2, whiteSpace: "nowrap" }}
          >
            Job Manager
          </Typography>
          {user && (
            <Box component="nav" aria-label="Main" sx={{ display: "flex", gap: 1, flexGrow: 1 }}>
              <Button color="inherit" component={RouterLink} to="/">
                Collabs
              </Button>
              <Button color="inherit" component={RouterLink} to="/projects">
                Projects
              </Button>
            </Box>
          )}
          {!user && <Box sx={{ flexGrow: 1 }} />}
          {user && (
            <Box sx={{ display: "flex", alignItems: "center", gap: 1 }}>
              <Typography variant="body2" component="span" aria-label={`Signed in as ${user.username}`}>
                {user.username}
                {user.is_admin ? " (admin)" : ""}
              </Typography>
              <Button color="inherit" variant="outlined" onClick={onSignOut} disabled={signingOut}>
                Sign out
              </Button>
            </Box>
          )}
        </Toolbar>
      </AppBar>
      <ServiceBanner />
      <Container component="main" id="main" tabIndex={-1} maxWidth="xl" sx={{ py: 3, px: { xs: 1, sm: 2, md: 3 }, outline: "none" }}>
        {children}
      </Container>
    </>
  );
}
